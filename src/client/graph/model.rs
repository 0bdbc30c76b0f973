//! Graph's JSON for the approval APIs (entra-graph.md §2–§4), typed: camelCase, unknown fields
//! ignored, `Option` wherever the docs (or their revisions) are unsure, enum values kept as
//! strings and compared case-insensitively (doc examples write `SelfActivate`, resources
//! `selfActivate`). Only ids without which a row means nothing are required.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `identity`: an id and a name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `identitySet`; only the user is read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IdentitySet {
    #[serde(default)]
    pub user: Option<Identity>,
}

/// A `user` (or the `directoryObject` Graph sends for one it cannot expand).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
}

/// Anything named: a role definition, a group, an access package.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Named {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `expirationPattern`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpirationPattern {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub end_date_time: Option<String>,
    #[serde(default)]
    pub duration: Option<String>,
}

/// `requestSchedule` (PIM) or `entitlementManagementSchedule` (access packages).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    #[serde(default)]
    pub start_date_time: Option<String>,
    #[serde(default)]
    pub expiration: Option<ExpirationPattern>,
}

/// `ticketInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketInfo {
    #[serde(default)]
    pub ticket_number: Option<String>,
    #[serde(default)]
    pub ticket_system: Option<String>,
}

/// `unifiedRoleAssignmentScheduleRequest` (v1.0), with `roleDefinition` and `principal`
/// expanded when Graph does.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRequest {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub approval_id: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    pub principal_id: String,
    pub role_definition_id: String,
    #[serde(default)]
    pub directory_scope_id: Option<String>,
    #[serde(default)]
    pub app_scope_id: Option<String>,
    #[serde(default)]
    pub justification: Option<String>,
    #[serde(default)]
    pub schedule_info: Option<Schedule>,
    #[serde(default)]
    pub ticket_info: Option<TicketInfo>,
    #[serde(default)]
    pub created_date_time: Option<String>,
    #[serde(default)]
    pub created_by: Option<IdentitySet>,
    #[serde(default)]
    pub role_definition: Option<Named>,
    #[serde(default)]
    pub principal: Option<User>,
}

/// `privilegedAccessGroupAssignmentScheduleRequest` (v1.0), with `group` and `principal`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRequest {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub approval_id: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    pub principal_id: String,
    pub group_id: String,
    #[serde(default)]
    pub access_id: Option<String>,
    #[serde(default)]
    pub justification: Option<String>,
    #[serde(default)]
    pub schedule_info: Option<Schedule>,
    #[serde(default)]
    pub ticket_info: Option<TicketInfo>,
    #[serde(default)]
    pub created_date_time: Option<String>,
    #[serde(default)]
    pub created_by: Option<IdentitySet>,
    #[serde(default)]
    pub group: Option<Named>,
    #[serde(default)]
    pub principal: Option<User>,
}

/// `accessPackageSubject`: who asked for an access package.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub object_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub principal_name: Option<String>,
}

/// `accessPackageAssignmentRequest` (v1.0), with `accessPackage` and `requestor`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageRequest {
    pub id: String,
    #[serde(default)]
    pub request_type: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub justification: Option<String>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub created_date_time: Option<String>,
    #[serde(default)]
    pub access_package: Option<Named>,
    #[serde(default)]
    pub requestor: Option<Subject>,
}

/// An `approval`: v1.0 names its stages `stages`, beta (and role approvals) `steps`.
#[derive(Debug, Clone, Deserialize)]
pub struct Approval {
    pub id: String,
    #[serde(default, alias = "steps")]
    pub stages: Vec<Stage>,
}

/// An `approvalStage` (v1.0) or `approvalStep` (beta).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub assigned_to_me: Option<bool>,
    #[serde(default)]
    pub justification: Option<String>,
    /// `NotReviewed`, `Approved`, `Denied`.
    #[serde(default)]
    pub review_result: Option<String>,
    /// `InProgress`, `Initializing`, `Completed`, `Expired`.
    #[serde(default)]
    pub status: Option<String>,
    /// One `identity` (v1.0) or a collection (beta).
    #[serde(default)]
    pub reviewed_by: Option<serde_json::Value>,
    #[serde(default)]
    pub reviewed_date_time: Option<String>,
}

fn is(value: &Option<String>, expected: &str) -> bool {
    value
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case(expected))
}

impl Stage {
    pub fn assigned_to_me(&self) -> bool {
        self.assigned_to_me.unwrap_or(false)
    }

    pub fn in_progress(&self) -> bool {
        is(&self.status, "InProgress")
    }

    pub fn completed(&self) -> bool {
        is(&self.status, "Completed")
            || is(&self.review_result, "Approved")
            || is(&self.review_result, "Denied")
    }

    pub fn expired(&self) -> bool {
        is(&self.status, "Expired")
    }

    /// Who decided it: the object ids and names in `reviewedBy`, however it is shaped.
    pub fn reviewers(&self) -> Vec<Identity> {
        let one = |v: &serde_json::Value| serde_json::from_value::<Identity>(v.clone()).ok();
        match &self.reviewed_by {
            Some(serde_json::Value::Array(items)) => items.iter().filter_map(one).collect(),
            Some(v @ serde_json::Value::Object(_)) => one(v).into_iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// Graph's timestamps: RFC 3339 (`2021-07-15T19:57:17.76Z`); `None` for anything else.
pub fn time(value: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value?.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether a request still waits for approval (`status` PendingApproval, or an access
/// package's `state` pendingApproval), case-insensitively.
pub fn pending(status: &Option<String>) -> bool {
    is(status, "PendingApproval")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_doc_examples_parse_with_their_casing_and_unknown_fields() {
        let role: RoleRequest = serde_json::from_str(
            r##"{"@odata.type":"#microsoft.graph.unifiedRoleAssignmentScheduleRequest",
            "id":"9f2b5ddb","status":"PendingApproval","createdDateTime":"2021-07-15T19:57:17.76Z",
            "completedDateTime":"2021-07-15T19:57:17.537Z","approvalId":"9f2b5ddb","customData":null,
            "action":"SelfActivate","principalId":"d96ea738","roleDefinitionId":"88d8e3e3",
            "directoryScopeId":"/","appScopeId":null,"isValidationOnly":false,
            "targetScheduleId":"9f2b5ddb","justification":"test",
            "createdBy":{"application":null,"device":null,"user":{"displayName":null,"id":"d96ea738"}},
            "scheduleInfo":{"startDateTime":null,"recurrence":null,
              "expiration":{"type":"afterDuration","endDateTime":null,"duration":"PT5H30M"}},
            "ticketInfo":{"ticketNumber":null,"ticketSystem":null},"somethingNew":[1,2]}"##,
        )
        .unwrap();
        assert!(pending(&role.status));
        assert_eq!(role.action.as_deref(), Some("SelfActivate"));
        assert!(time(role.created_date_time.as_deref()).is_some());
        let approval: Approval = serde_json::from_str(
            r#"{"id":"x","steps@odata.context":"…","steps":[{"id":"s","displayName":null,
            "reviewedDateTime":null,"reviewResult":"NotReviewed","status":"InProgress",
            "assignedToMe":true,"justification":"","reviewedBy":null}]}"#,
        )
        .unwrap();
        assert!(approval.stages[0].in_progress() && approval.stages[0].assigned_to_me());
        let decided: Stage = serde_json::from_str(
            r#"{"id":"s","reviewResult":"approved","status":"completed",
            "reviewedBy":[{"id":"a","displayName":"Adele"}]}"#,
        )
        .unwrap();
        assert!(decided.completed());
        assert_eq!(decided.reviewers()[0].id.as_deref(), Some("a"));
        let single: Stage = serde_json::from_str(r#"{"id":"s","reviewedBy":{"id":"b"}}"#).unwrap();
        assert_eq!(single.reviewers()[0].id.as_deref(), Some("b"));
        assert!(serde_json::from_str::<RoleRequest>(r#"{"id":"x"}"#).is_err());
        assert_eq!(time(Some("yesterday")), None);
    }
}
