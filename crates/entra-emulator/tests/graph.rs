//! Graph over HTTPS: the bearer check, lists that page and filter, approvals of each kind,
//! deciding (204, 403, 409, the recorded PATCH), and every injectable fault.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use chrono::Duration;
use entra_emulator::{Fault, RequestKind, RequestSeed, RequestStatus, SecondDecision, demo};
use serde_json::json;
use support::start;

const ROLE_LIST: &str = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests/filterByCurrentUser(on='approver')?$filter=status eq 'PendingApproval'";

fn role_step(id: &str, step: &str) -> String {
    format!("/beta/roleManagement/directory/roleAssignmentApprovals/{id}/steps/{step}")
}

#[tokio::test]
async fn graph_wants_a_valid_graph_token() {
    let h = start().await;
    let none = h.get("", "/v1.0/me").await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["code"], "InvalidAuthenticationToken");
    assert!(none.headers.contains_key("www-authenticate"));
    let api = h
        .emu
        .access_token(
            demo::ADELE,
            &format!("api://{}/governance", demo::GOVERNANCE_APP_ID),
        )
        .unwrap();
    assert_eq!(h.get(&api, "/v1.0/me").await.status, 401, "wrong audience");
    let token = h.token(demo::ADELE);
    let me = h.get(&token, "/v1.0/me").await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["userPrincipalName"], "adele@contoso.example");
    assert_eq!(me.headers["client-request-id"], "test-client-id");
    assert!(me.headers.contains_key("request-id"));
    h.emu.advance(Duration::seconds(3600));
    assert_eq!(h.get(&token, "/v1.0/me").await.status, 401, "expired");
    let narrow = h.emu.access_token(demo::ADELE, "User.Read").unwrap();
    let denied = h.get(&narrow, ROLE_LIST).await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.json()["error"]["code"],
        "Authorization_RequestDenied"
    );
}

#[tokio::test]
async fn lists_page_with_next_links_filter_on_status_and_expand_names() {
    let h = start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            h.emu
                .seed(
                    RequestSeed::role(demo::MEGAN, demo::ROLE_USER_ADMIN)
                        .justification(&format!("job {i}")),
                )
                .unwrap(),
        );
    }
    let token = h.token(demo::ADELE);
    // One decided request drops out of the status filter.
    let approval = h
        .get(
            &token,
            &format!(
                "/beta/roleManagement/directory/roleAssignmentApprovals/{}",
                ids[0]
            ),
        )
        .await
        .json();
    let step = approval["steps"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(approval["steps"][0]["assignedToMe"], true);
    assert_eq!(approval["steps"][0]["reviewResult"], "NotReviewed");
    assert_eq!(
        h.patch(
            &token,
            &role_step(&ids[0], &step),
            &json!({"reviewResult": "Approve", "justification": "ok"})
        )
        .await
        .status,
        204
    );

    h.emu.set_page_size(2);
    let mut url = format!("{ROLE_LIST}&$expand=roleDefinition,principal($select=id)");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = h.get(&token, &url).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let body = page.json();
        assert!(
            body["@odata.context"]
                .as_str()
                .unwrap()
                .contains("unifiedRoleAssignmentScheduleRequest")
        );
        for item in body["value"].as_array().unwrap() {
            assert_eq!(item["status"], "PendingApproval");
            assert_eq!(item["roleDefinition"]["displayName"], "User Administrator");
            assert_eq!(item["principal"]["displayName"], "Megan Bowen");
            assert_eq!(item["scheduleInfo"]["expiration"]["type"], "afterDuration");
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        match body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.contains("skiptoken") && next.contains("filter"),
                    "{next}"
                );
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, ids[1..].to_vec());
    // Megan sees her own under on='principal', and none to approve.
    let megan = h.token(demo::MEGAN);
    let own = h.get(&megan, "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests/filterByCurrentUser(on='principal')?$count=true").await.json();
    assert_eq!(own["@odata.count"], 5);
    let none = h.get(&megan, ROLE_LIST).await.json();
    assert_eq!(none["value"], json!([]));
    assert_eq!(
        h.get(&token, &format!("{ROLE_LIST} and")).await.status,
        400,
        "a bad filter"
    );
}

#[tokio::test]
async fn deciding_a_role_step_is_recorded_once_and_refused_to_others() {
    let h = start().await;
    let id = h
        .emu
        .seed_role_request(demo::MEGAN, demo::ROLE_SECURITY_ADMIN, demo::ADELE)
        .unwrap();
    let step = h.emu.request(&id).unwrap().stages[0].id.clone();
    let (adele, megan, lee) = (
        h.token(demo::ADELE),
        h.token(demo::MEGAN),
        h.token(demo::LEE),
    );
    let body = json!({"reviewResult": "Approve", "justification": "Trusted User"});
    assert_eq!(
        h.patch(&lee, &role_step(&id, &step), &body).await.status,
        403,
        "not an approver"
    );
    assert_eq!(
        h.patch(&megan, &role_step(&id, &step), &body).await.status,
        403,
        "own request"
    );
    let window =
        json!({"reviewResult": "Approve", "scheduleInfo": {"expiration": {"duration": "PT1H"}}});
    assert_eq!(
        h.patch(&adele, &role_step(&id, &step), &window)
            .await
            .status,
        400,
        "no schedule changes"
    );
    assert_eq!(
        h.patch(&adele, &role_step(&id, "nope"), &body).await.status,
        404
    );
    assert_eq!(
        h.patch(
            &adele,
            &format!("/v1.0/roleManagement/directory/roleAssignmentApprovals/{id}/steps/{step}"),
            &body
        )
        .await
        .status,
        400,
        "role approvals are beta only"
    );
    let done = h.patch(&adele, &role_step(&id, &step), &body).await;
    assert_eq!(done.status, 204);
    assert!(done.text.is_empty());
    let decisions = h.emu.decisions();
    assert_eq!(decisions.len(), 1);
    let d = &decisions[0];
    assert_eq!(
        (d.kind, d.approval_id.as_str(), d.stage_id.as_str()),
        (RequestKind::Role, id.as_str(), step.as_str())
    );
    assert_eq!(
        (
            d.approver_id.as_str(),
            d.review_result.as_str(),
            d.justification.as_str()
        ),
        (demo::ADELE, "Approve", "Trusted User")
    );
    assert_eq!(d.request_id, done.headers["request-id"].to_str().unwrap());
    assert_eq!(
        h.emu.request(&id).unwrap().status,
        RequestStatus::Provisioned
    );
    let again = h
        .patch(
            &adele,
            &role_step(&id, &step),
            &json!({"reviewResult": "Deny", "justification": "x"}),
        )
        .await;
    assert_eq!(again.status, 409);
    assert!(again.json()["error"]["innerError"]["request-id"].is_string());
    h.emu.set_second_decision(SecondDecision::BadRequest);
    assert_eq!(
        h.patch(&adele, &role_step(&id, &step), &body).await.status,
        400
    );
    let step_after = h.get(&adele, &role_step(&id, &step)).await.json();
    assert_eq!(step_after["reviewResult"], "Approved");
    assert_eq!(step_after["reviewedBy"][0]["id"], demo::ADELE);
    assert_eq!(h.emu.decisions().len(), 1);
}

#[tokio::test]
async fn group_stages_in_v1_and_package_stages_in_order() {
    let h = start().await;
    let (adele, alex) = (h.token(demo::ADELE), h.token(demo::ALEX));
    let group = h
        .emu
        .seed_group_request(demo::MEGAN, demo::GROUP_PROD_DB, demo::ADELE)
        .unwrap();
    let list = h.get(&adele, "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleRequests/filterByCurrentUser(on='approver')?$filter=status eq 'PendingApproval'&$expand=group").await.json();
    assert_eq!(list["value"][0]["groupId"], demo::GROUP_PROD_DB);
    assert_eq!(list["value"][0]["accessId"], "member");
    assert_eq!(
        list["value"][0]["group"]["displayName"],
        "Production database operators"
    );
    let approval = h
        .get(
            &adele,
            &format!("/v1.0/identityGovernance/privilegedAccess/group/assignmentApprovals/{group}"),
        )
        .await
        .json();
    let stage = approval["stages"][0]["id"].as_str().unwrap();
    let path = format!(
        "/v1.0/identityGovernance/privilegedAccess/group/assignmentApprovals/{group}/stages/{stage}"
    );
    assert_eq!(
        h.patch(
            &adele,
            &path,
            &json!({"reviewResult": "deny", "justification": "not now"})
        )
        .await
        .status,
        204
    );
    assert_eq!(h.emu.request(&group).unwrap().status, RequestStatus::Denied);
    assert_eq!(h.emu.decisions()[0].review_result, "Deny");

    let package = h
        .emu
        .seed(RequestSeed::access_package(
            demo::MEGAN,
            demo::PACKAGE_AGENT_TOOLS,
        ))
        .unwrap();
    let base = "/v1.0/identityGovernance/entitlementManagement";
    let mine = h.get(&adele, &format!("{base}/assignmentRequests/filterByCurrentUser(on='approver')?$expand=requestor,accessPackage")).await.json();
    assert_eq!(mine["value"][0]["state"], "pendingApproval");
    assert_eq!(mine["value"][0]["requestor"]["displayName"], "Megan Bowen");
    assert_eq!(
        mine["value"][0]["accessPackage"]["displayName"],
        "Agent tooling access"
    );
    let approval = h
        .get(
            &adele,
            &format!("{base}/accessPackageAssignmentApprovals/{package}"),
        )
        .await
        .json();
    let (first, second) = (
        approval["stages"][0]["id"].as_str().unwrap(),
        approval["stages"][1]["id"].as_str().unwrap(),
    );
    let ok = json!({"reviewResult": "Approve", "justification": "fine"});
    assert_eq!(
        h.patch(
            &alex,
            &format!("{base}/accessPackageAssignmentApprovals/{package}/stages/{second}"),
            &ok
        )
        .await
        .status,
        400,
        "stage 2 waits for stage 1"
    );
    assert_eq!(
        h.patch(
            &adele,
            &format!("{base}/accessPackageAssignmentApprovals/{package}/stages/{first}"),
            &ok
        )
        .await
        .status,
        204
    );
    assert_eq!(
        h.patch(
            &alex,
            &format!("{base}/accessPackageAssignmentApprovals/{package}/stages/{second}"),
            &ok
        )
        .await
        .status,
        204
    );
    let done = h
        .get(&alex, &format!("{base}/assignmentRequests/{package}"))
        .await
        .json();
    assert_eq!(done["state"], "delivered");
    let looked_up = h
        .get(
            &adele,
            &format!("{base}/accessPackages/{}", demo::PACKAGE_AGENT_TOOLS),
        )
        .await;
    assert_eq!(looked_up.json()["displayName"], "Agent tooling access");
    assert_eq!(
        h.get(&adele, &format!("/v1.0/users/{}", demo::MEGAN))
            .await
            .json()["displayName"],
        "Megan Bowen"
    );
    assert_eq!(
        h.get(&adele, "/v1.0/users/nobody").await.json()["error"]["code"],
        "Request_ResourceNotFound"
    );
}

#[tokio::test]
async fn faults_throttle_fail_break_and_loop_then_clear() {
    let h = start().await;
    h.emu
        .seed_role_request(demo::MEGAN, demo::ROLE_USER_ADMIN, demo::ADELE)
        .unwrap();
    let token = h.token(demo::ADELE);
    h.emu
        .inject(Fault::throttle("filterByCurrentUser", Some("2")).times(2));
    for _ in 0..2 {
        let a = h.get(&token, ROLE_LIST).await;
        assert_eq!(a.status, 429);
        assert_eq!(a.headers["retry-after"], "2");
        assert_eq!(a.json()["error"]["code"], "TooManyRequests");
    }
    assert_eq!(h.get(&token, ROLE_LIST).await.status, 200);
    h.emu.inject(Fault::throttle("filterByCurrentUser", None));
    assert!(
        !h.get(&token, ROLE_LIST)
            .await
            .headers
            .contains_key("retry-after")
    );
    h.emu
        .inject(Fault::unavailable("filterByCurrentUser", Some("1.5")));
    let a = h.get(&token, ROLE_LIST).await;
    assert_eq!(
        (
            a.status.as_u16(),
            a.headers["retry-after"].to_str().unwrap()
        ),
        (503, "1.5")
    );
    h.emu.inject(Fault::gateway_timeout("filterByCurrentUser"));
    assert_eq!(h.get(&token, ROLE_LIST).await.status, 504);
    h.emu.inject(Fault::malformed_json("filterByCurrentUser"));
    let broken = h.get(&token, ROLE_LIST).await;
    assert_eq!(broken.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&broken.text).is_err());
    h.emu
        .inject(Fault::next_link_loop("filterByCurrentUser").always());
    for _ in 0..3 {
        let page = h.get(&token, ROLE_LIST).await.json();
        let next = page["@odata.nextLink"].as_str().unwrap();
        assert_eq!(h.get(&token, next).await.json()["@odata.nextLink"], next);
    }
    h.emu.clear_faults();
    assert!(
        h.get(&token, ROLE_LIST)
            .await
            .json()
            .get("@odata.nextLink")
            .is_none()
    );
    h.emu.inject(
        Fault::status("/roleAssignmentApprovals/", 500, "generalException").method("PATCH"),
    );
    let id = h
        .emu
        .seed_role_request(demo::MEGAN, demo::ROLE_USER_ADMIN, demo::ADELE)
        .unwrap();
    let step = h.emu.request(&id).unwrap().stages[0].id.clone();
    let body = json!({"reviewResult": "Approve", "justification": "j"});
    assert_eq!(
        h.patch(&token, &role_step(&id, &step), &body).await.status,
        500
    );
    assert!(
        h.emu.decisions().is_empty(),
        "a failed PATCH decides nothing"
    );
    assert_eq!(
        h.patch(&token, &role_step(&id, &step), &body).await.status,
        204
    );
    let calls = h.emu.calls_to("filterByCurrentUser");
    assert!(
        calls.iter().any(|c| c.status == 429)
            && calls
                .iter()
                .all(|c| c.client_request_id.as_deref() == Some("test-client-id"))
    );
}

#[tokio::test]
async fn unanswered_approvals_expire_after_a_day() {
    let h = start().await;
    let id = h
        .emu
        .seed_role_request(demo::MEGAN, demo::ROLE_USER_ADMIN, demo::ADELE)
        .unwrap();
    let step = h.emu.request(&id).unwrap().stages[0].id.clone();
    h.emu.advance(Duration::hours(24));
    let token = h.token(demo::ADELE);
    let approval = h
        .get(
            &token,
            &format!("/beta/roleManagement/directory/roleAssignmentApprovals/{id}"),
        )
        .await
        .json();
    assert_eq!(approval["steps"][0]["status"], "Expired");
    assert_eq!(h.emu.request(&id).unwrap().status, RequestStatus::Canceled);
    let late = h
        .patch(
            &token,
            &role_step(&id, &step),
            &json!({"reviewResult": "Approve"}),
        )
        .await;
    assert_eq!(late.status, 400);
}
