//! Graph's JSON for the directory and the requests: camelCase, enum values in camelCase (PIM
//! `status` values are PascalCase in Graph, and stay so), `@odata.type` where Graph sends it.

use serde_json::{Value, json};

use crate::clock::graph_time;
use crate::directory::{AccessPackage, Directory, Group, RoleDefinition, User};
use crate::requests::{PimRequest, RequestKind, Stage};

pub fn user(u: &User) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": u.id,
        "displayName": u.display_name,
        "userPrincipalName": u.user_principal_name,
        "mail": u.user_principal_name,
    })
}

/// A user by id, or a bare `{"id"}` for one the directory no longer has.
fn user_or_id(directory: &Directory, id: &str) -> Value {
    directory
        .user(id)
        .map(user)
        .unwrap_or_else(|| json!({"@odata.type": "#microsoft.graph.directoryObject", "id": id}))
}

pub fn role_definition(r: &RoleDefinition) -> Value {
    json!({
        "id": r.id,
        "displayName": r.display_name,
        "description": r.description,
        "isBuiltIn": true,
        "isEnabled": true,
        "templateId": r.id,
    })
}

pub fn group(g: &Group) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.group",
        "id": g.id,
        "displayName": g.display_name,
        "description": g.description,
    })
}

pub fn access_package(p: &AccessPackage) -> Value {
    json!({
        "id": p.id,
        "displayName": p.display_name,
        "description": p.description,
        "isHidden": false,
    })
}

fn schedule(r: &PimRequest) -> Value {
    let (kind, end, duration) = match (&r.duration, r.end) {
        (Some(d), _) => ("afterDuration", Value::Null, json!(d)),
        (None, Some(end)) => ("afterDateTime", json!(graph_time(end)), Value::Null),
        (None, None) => ("noExpiration", Value::Null, Value::Null),
    };
    json!({
        "startDateTime": r.start.map(graph_time),
        "recurrence": null,
        "expiration": {"type": kind, "endDateTime": end, "duration": duration},
    })
}

/// The fields PIM role and group requests share.
fn pim_base(r: &PimRequest, odata_type: &str) -> Value {
    json!({
        "@odata.type": odata_type,
        "id": r.id,
        "status": r.status.as_str(),
        "createdDateTime": graph_time(r.created),
        "completedDateTime": r.completed.map(graph_time),
        "approvalId": (!r.stages.is_empty()).then(|| r.id.clone()),
        "customData": null,
        "action": r.action,
        "principalId": r.principal_id,
        "isValidationOnly": false,
        "targetScheduleId": r.id,
        "justification": r.justification,
        "createdBy": {"application": null, "device": null, "user": {"displayName": null, "id": r.principal_id}},
        "scheduleInfo": schedule(r),
        "ticketInfo": {"ticketNumber": r.ticket_number, "ticketSystem": r.ticket_system},
    })
}

/// A request as its list or get answers it, with the `$expand`ed relationships.
pub fn request(r: &PimRequest, directory: &Directory, expand: &[String]) -> Value {
    let wants = |name: &str| expand.iter().any(|e| e == name);
    match r.kind {
        RequestKind::Role => {
            let mut v = pim_base(r, "#microsoft.graph.unifiedRoleAssignmentScheduleRequest");
            v["roleDefinitionId"] = json!(r.target_id);
            v["directoryScopeId"] = json!(r.directory_scope_id);
            v["appScopeId"] = Value::Null;
            if wants("roledefinition") {
                v["roleDefinition"] = directory
                    .role_definition(&r.target_id)
                    .map(role_definition)
                    .unwrap_or(Value::Null);
            }
            if wants("principal") {
                v["principal"] = user_or_id(directory, &r.principal_id);
            }
            v
        }
        RequestKind::Group => {
            let mut v = pim_base(
                r,
                "#microsoft.graph.privilegedAccessGroupAssignmentScheduleRequest",
            );
            v["groupId"] = json!(r.target_id);
            v["accessId"] = json!(r.access_id);
            if wants("group") {
                v["group"] = directory
                    .group(&r.target_id)
                    .map(group)
                    .unwrap_or(Value::Null);
            }
            if wants("principal") {
                v["principal"] = user_or_id(directory, &r.principal_id);
            }
            v
        }
        RequestKind::AccessPackage => {
            let (state, status) = r.status.package_state();
            let mut v = json!({
                "@odata.type": "#microsoft.graph.accessPackageAssignmentRequest",
                "id": r.id,
                "requestType": r.action,
                "state": state,
                "status": status,
                "createdDateTime": graph_time(r.created),
                "completedDateTime": r.completed.map(graph_time),
                "justification": r.justification,
                "schedule": schedule(r),
            });
            if wants("accesspackage") {
                v["accessPackage"] = directory
                    .access_package(&r.target_id)
                    .map(access_package)
                    .unwrap_or(Value::Null);
            }
            if wants("requestor") {
                let u = directory.user(&r.principal_id);
                v["requestor"] = json!({
                    "id": r.principal_id,
                    "objectId": r.principal_id,
                    "displayName": u.map(|u| u.display_name.clone()),
                    "email": u.map(|u| u.user_principal_name.clone()),
                    "principalName": u.map(|u| u.user_principal_name.clone()),
                    "subjectType": "user",
                });
            }
            v
        }
    }
}

/// One step (beta: `reviewedBy` is a collection) or stage (v1.0: a single identity).
pub fn stage(s: &Stage, directory: &Directory, caller: &str, collection: bool) -> Value {
    let reviewer = s.reviewed_by.as_ref().map(|id| {
        json!({
            "id": id,
            "displayName": directory.user(id).map(|u| u.display_name.clone()),
        })
    });
    let reviewed_by = match (reviewer, collection) {
        (Some(r), true) => json!([r]),
        (Some(r), false) => r,
        (None, _) => Value::Null,
    };
    json!({
        "id": s.id,
        "displayName": null,
        "reviewedDateTime": s.reviewed_at.map(graph_time),
        "reviewResult": s.review_result.as_str(),
        "status": s.status.as_str(),
        "assignedToMe": s.approvers.iter().any(|a| a.eq_ignore_ascii_case(caller)),
        "justification": s.justification,
        "reviewedBy": reviewed_by,
    })
}

/// The approval of a request: `steps` (role approvals, beta group approvals) or `stages`.
pub fn approval(r: &PimRequest, directory: &Directory, caller: &str, beta: bool) -> Value {
    let steps = r.kind == RequestKind::Role || (beta && r.kind == RequestKind::Group);
    let items: Vec<Value> = r
        .stages
        .iter()
        .map(|s| stage(s, directory, caller, beta))
        .collect();
    let mut v = json!({"id": r.id});
    v[if steps { "steps" } else { "stages" }] = Value::Array(items);
    v
}
