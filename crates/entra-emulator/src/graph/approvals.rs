//! Requests and their approvals: list what waits on me (`filterByCurrentUser`), read an
//! approval's steps or stages, decide one (`PATCH` → 204), and the PIM role request's create
//! and cancel. Every decision made is recorded for tests.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Call, Failure, odata, render};
use crate::requests::{DecideError, RequestKind, RequestSeed, decide as decide_stage};
use crate::state::{RecordedDecision, SecondDecision};

/// (read scopes, write scopes) for each kind, least privileged first.
fn scopes(kind: RequestKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        RequestKind::Role => (
            &[
                "RoleAssignmentSchedule.Read.Directory",
                "RoleAssignmentSchedule.ReadWrite.Directory",
                "RoleManagement.Read.Directory",
                "RoleManagement.ReadWrite.Directory",
            ],
            &[
                "RoleAssignmentSchedule.ReadWrite.Directory",
                "RoleManagement.ReadWrite.Directory",
            ],
        ),
        RequestKind::Group => (
            &[
                "PrivilegedAssignmentSchedule.Read.AzureADGroup",
                "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup",
            ],
            &["PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup"],
        ),
        RequestKind::AccessPackage => (
            &[
                "EntitlementManagement.Read.All",
                "EntitlementManagement.ReadWrite.All",
            ],
            &["EntitlementManagement.ReadWrite.All"],
        ),
    }
}

fn entity(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Role => "unifiedRoleAssignmentScheduleRequest",
        RequestKind::Group => "privilegedAccessGroupAssignmentScheduleRequest",
        RequestKind::AccessPackage => "accessPackageAssignmentRequest",
    }
}

/// `filterByCurrentUser(on=…)`: `approver` (requests I approve), or `principal` / `createdBy`
/// / `target` (my own).
pub fn list(call: &Call, kind: RequestKind, on: &str) -> Result<Response, Failure> {
    call.require(scopes(kind).0)?;
    let me = call.caller.oid.clone();
    let expand = call.expand();
    let items = {
        let now = call.app.now();
        let mut world = call.app.world();
        world.settle(now);
        let mine: Box<dyn Fn(&crate::requests::PimRequest) -> bool> = match on {
            "approver" => Box::new(|r| r.is_approver(&me)),
            "principal" | "createdby" | "target" => {
                Box::new(|r| r.principal_id.eq_ignore_ascii_case(&me))
            }
            other => {
                return Err(Failure::bad_request(format!(
                    "The value '{other}' of parameter 'on' is not supported."
                )));
            }
        };
        world
            .requests
            .iter()
            .filter(|r| r.kind == kind && mine(r))
            .map(|r| render::request(r, &world.directory, &expand))
            .collect()
    };
    let items = odata::filter(call, items)?;
    odata::page(call, items, entity(kind))
}

pub fn get_request(call: &Call, kind: RequestKind, id: &str) -> Result<Response, Failure> {
    call.require(scopes(kind).0)?;
    let now = call.app.now();
    let mut world = call.app.world();
    world.settle(now);
    let me = call.caller.oid.clone();
    let expand = call.expand();
    let r = world
        .requests
        .iter()
        .find(|r| r.kind == kind && r.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| Failure::not_found(format!("No request with id '{id}'.")))?;
    if !r.is_approver(&me) && !r.principal_id.eq_ignore_ascii_case(&me) {
        return Err(Failure::forbidden(
            "The caller can neither approve nor see this request.",
        ));
    }
    Ok(Json(render::request(r, &world.directory, &expand)).into_response())
}

/// The approval with its steps or stages as the caller sees them (`assignedToMe`).
fn approval_value(call: &Call, kind: RequestKind, id: &str) -> Result<Value, Failure> {
    call.require(scopes(kind).0)?;
    let now = call.app.now();
    let mut world = call.app.world();
    world.settle(now);
    let me = &call.caller.oid;
    let r = world
        .requests
        .iter()
        .find(|r| r.kind == kind && r.id.eq_ignore_ascii_case(id) && !r.stages.is_empty())
        .ok_or_else(|| Failure::not_found(format!("No approval with id '{id}'.")))?;
    if !r.is_approver(me) && !r.principal_id.eq_ignore_ascii_case(me) {
        return Err(Failure::forbidden(
            "The caller is not an approver of this request.",
        ));
    }
    Ok(render::approval(r, &world.directory, me, call.beta))
}

pub fn get_approval(call: &Call, kind: RequestKind, id: &str) -> Result<Response, Failure> {
    let mut v = approval_value(call, kind, id)?;
    let base = &call.app.settings().base_url;
    let path = match kind {
        RequestKind::Role => "roleManagement/directory/roleAssignmentApprovals",
        RequestKind::Group => "identityGovernance/privilegedAccess/group/assignmentApprovals",
        RequestKind::AccessPackage => {
            "identityGovernance/entitlementManagement/accessPackageAssignmentApprovals"
        }
    };
    v["@odata.context"] = json!(format!(
        "{base}/{}/$metadata#{path}/$entity",
        call.version()
    ));
    Ok(Json(v).into_response())
}

pub fn list_stages(call: &Call, kind: RequestKind, id: &str) -> Result<Response, Failure> {
    let v = approval_value(call, kind, id)?;
    let items = v
        .get("steps")
        .or_else(|| v.get("stages"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    odata::page(call, items, "approvalStep")
}

pub fn get_stage(
    call: &Call,
    kind: RequestKind,
    id: &str,
    stage: &str,
) -> Result<Response, Failure> {
    let v = approval_value(call, kind, id)?;
    v.get("steps")
        .or_else(|| v.get("stages"))
        .and_then(Value::as_array)
        .and_then(|items| {
            items.iter().find(|s| {
                s["id"]
                    .as_str()
                    .is_some_and(|sid| sid.eq_ignore_ascii_case(stage))
            })
        })
        .map(|s| Json(s.clone()).into_response())
        .ok_or_else(|| Failure::not_found(format!("No step with id '{stage}'.")))
}

/// The PATCH body: `reviewResult` (`Approve` or `Deny`, any case) and `justification`, and
/// nothing else (approvers cannot change the schedule).
fn review(body: &[u8]) -> Result<(bool, String), Failure> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Failure::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| Failure::bad_request("The request body must be a JSON object."))?;
    if let Some(other) = obj
        .keys()
        .find(|k| !["reviewResult", "justification", "@odata.type"].contains(&k.as_str()))
    {
        return Err(Failure::bad_request(format!(
            "Property '{other}' cannot be set on an approval stage; only reviewResult and justification can."
        )));
    }
    let approve = match obj.get("reviewResult").and_then(Value::as_str) {
        Some(r) if r.eq_ignore_ascii_case("approve") => true,
        Some(r) if r.eq_ignore_ascii_case("deny") => false,
        _ => {
            return Err(Failure::bad_request(
                "reviewResult must be 'Approve' or 'Deny'.",
            ));
        }
    };
    let justification = match obj.get("justification") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Failure::bad_request("justification must be a string.")),
    };
    Ok((approve, justification))
}

pub fn decide(call: &Call, kind: RequestKind, id: &str, stage: &str) -> Result<Response, Failure> {
    call.require(scopes(kind).1)?;
    let (approve, justification) = review(&call.body)?;
    let now: DateTime<Utc> = call.app.now();
    let mut world = call.app.world();
    world.settle(now);
    let second = world.second_decision;
    let me = call.caller.oid.clone();
    let request = world
        .request_mut(kind, id)
        .filter(|r| !r.stages.is_empty())
        .ok_or_else(|| Failure::not_found(format!("No approval with id '{id}'.")))?;
    decide_stage(request, stage, &me, approve, &justification, now).map_err(|e| match e {
        DecideError::StageNotFound => Failure::not_found(format!("No stage with id '{stage}'.")),
        DecideError::OwnRequest | DecideError::NotApprover => Failure::forbidden(e.to_string()),
        DecideError::AlreadyDecided => match second {
            SecondDecision::Conflict => {
                Failure::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            SecondDecision::BadRequest => Failure::bad_request(e.to_string()),
        },
        DecideError::NotInProgress | DecideError::Expired => Failure::bad_request(e.to_string()),
    })?;
    world.decisions.push(RecordedDecision {
        kind,
        approval_id: id.to_owned(),
        stage_id: stage.to_owned(),
        approver_id: me,
        review_result: if approve { "Approve" } else { "Deny" }.to_owned(),
        justification,
        api_version: call.version().to_owned(),
        request_id: call.ids.request_id.clone(),
        client_request_id: call.ids.client_request_id.clone(),
        at: now,
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, p| v.get(*p))?.as_str()
}

/// `POST …/roleAssignmentScheduleRequests`: a person activates a role for themself; the
/// role's approvers (from the directory) get an approval, or none is needed.
pub fn create_role_request(call: &Call) -> Result<Response, Failure> {
    call.require(scopes(RequestKind::Role).1)?;
    let body: Value = serde_json::from_slice(&call.body)
        .map_err(|e| Failure::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let action = text(&body, &["action"]).unwrap_or("selfActivate");
    if !action.eq_ignore_ascii_case("selfActivate") {
        return Err(Failure::forbidden(
            "The emulator accepts selfActivate requests only.",
        ));
    }
    let principal = text(&body, &["principalId"]).unwrap_or(&call.caller.oid);
    if !principal.eq_ignore_ascii_case(&call.caller.oid) {
        return Err(Failure::forbidden(
            "A self activation must be for the caller.",
        ));
    }
    let role = text(&body, &["roleDefinitionId"])
        .ok_or_else(|| Failure::bad_request("roleDefinitionId is required."))?;
    let now = call.app.now();
    let mut world = call.app.world();
    let approvers = world
        .directory
        .role_definition(role)
        .ok_or_else(|| Failure::bad_request(format!("No role definition '{role}'.")))?
        .approvers
        .clone();
    let mut seed = RequestSeed::role(&call.caller.oid, role)
        .action("selfActivate")
        .justification(text(&body, &["justification"]).unwrap_or(""));
    if let Some(d) = text(&body, &["scheduleInfo", "expiration", "duration"]) {
        seed = seed.duration(d);
    }
    if let (Some(n), Some(s)) = (
        text(&body, &["ticketInfo", "ticketNumber"]),
        text(&body, &["ticketInfo", "ticketSystem"]),
    ) {
        seed = seed.ticket(n, s);
    }
    let stages = if approvers.is_empty() {
        Vec::new()
    } else {
        vec![approvers]
    };
    let request = seed.build(stages, now);
    let answer = render::request(&request, &world.directory, &[]);
    world.requests.push(request);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `POST …/{id}/cancel` by the person who asked.
pub fn cancel(call: &Call, kind: RequestKind, id: &str) -> Result<Response, Failure> {
    call.require(scopes(kind).1)?;
    let now = call.app.now();
    let mut world = call.app.world();
    world.settle(now);
    let me = call.caller.oid.clone();
    let request = world
        .request_mut(kind, id)
        .ok_or_else(|| Failure::not_found(format!("No request with id '{id}'.")))?;
    if !request.principal_id.eq_ignore_ascii_case(&me) {
        return Err(Failure::forbidden(
            "Only the requester can cancel a request.",
        ));
    }
    if !request.is_pending() {
        return Err(Failure::bad_request("The request is no longer pending."));
    }
    request.status = crate::requests::RequestStatus::Canceled;
    request.completed = Some(now);
    Ok(StatusCode::NO_CONTENT.into_response())
}
