//! Approvals that wait on a person in Microsoft Entra (PIM for directory roles, PIM for
//! Groups, access packages), as the console shows them: one row type whatever the source, the
//! window asked for with its exact end, and the rule that nobody approves their own request.
//! Pure: the Graph adapter (`client::graph`) fills the rows.

pub mod sync;
pub mod window;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use sync::{SourceState, SyncStatus, summary};
pub use window::{Expiration, IsoDuration, RequestedWindow};

use super::Refusal;

/// Where an approval waits.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EntraSource {
    /// A PIM activation of a directory role (decided at the beta approval's `steps`).
    DirectoryRole,
    /// A PIM for Groups membership or ownership (v1.0 `stages`).
    PimGroup,
    /// An access-package assignment (v1.0 `stages`).
    AccessPackage,
}

impl EntraSource {
    pub const ALL: [EntraSource; 3] = [
        EntraSource::DirectoryRole,
        EntraSource::PimGroup,
        EntraSource::AccessPackage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntraSource::DirectoryRole => "directory_role",
            EntraSource::PimGroup => "pim_group",
            EntraSource::AccessPackage => "access_package",
        }
    }

    /// The prefix of a row's key: `role`, `group`, `package`.
    pub fn short(self) -> &'static str {
        match self {
            EntraSource::DirectoryRole => "role",
            EntraSource::PimGroup => "group",
            EntraSource::AccessPackage => "package",
        }
    }

    /// For people: `Entra role`, `PIM group`, `access package`.
    pub fn label(self) -> &'static str {
        match self {
            EntraSource::DirectoryRole => "Entra role",
            EntraSource::PimGroup => "PIM group",
            EntraSource::AccessPackage => "access package",
        }
    }

    /// For a narrow column: `Entra role`, `PIM group`, `access pkg`.
    pub fn column(self) -> &'static str {
        match self {
            EntraSource::DirectoryRole => "Entra role",
            EntraSource::PimGroup => "PIM group",
            EntraSource::AccessPackage => "access pkg",
        }
    }

    /// From [`EntraSource::short`] or [`EntraSource::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.short().eq_ignore_ascii_case(s) || k.as_str().eq_ignore_ascii_case(s))
    }
}

/// A person (or other principal) as Graph names them; the names are unknown until resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The object id.
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// The user principal name.
    #[serde(default)]
    pub username: Option<String>,
}

impl Principal {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// The display name, else the UPN, else the id.
    pub fn label(&self) -> &str {
        self.display_name
            .as_deref()
            .or(self.username.as_deref())
            .unwrap_or(&self.id)
    }

    /// `Megan Bowen <megan@contoso.com>` when both are known, else [`Principal::label`]. As
    /// Graph wrote it: escape it before a terminal shows it.
    pub fn name_and_upn(&self) -> String {
        match (&self.display_name, &self.username) {
            (Some(name), Some(upn)) => format!("{name} <{upn}>"),
            _ => self.label().to_owned(),
        }
    }
}

/// The role, group or access package a request is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl Target {
    pub fn label(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.id)
    }
}

/// A ticket the requester named (`ticketInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
}

/// PIM approvers have 24 hours (not configurable); then the request must be made again.
pub const APPROVAL_WINDOW_HOURS: i64 = 24;

/// One approval waiting on me, whatever its source: the console's inbox row and what deciding
/// it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraApproval {
    pub source: EntraSource,
    /// The request's id.
    pub id: String,
    /// Its approval's id (in Graph, the request's id too).
    pub approval_id: String,
    /// Who the request is for.
    pub requester: Principal,
    /// Who made it, when someone else did (an admin, or on behalf of an agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The role definition, group or access package.
    pub target: Target,
    /// Roles: the directory scope (`/` is the whole tenant); groups: `member` or `owner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `selfActivate`, `adminAssign`, `userAdd`, … as Graph wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub window: RequestedWindow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Ticket>,
    #[serde(default, with = "crate::protocol::time::option")]
    pub created_at: Option<DateTime<Utc>>,
    /// Graph's `status` (or an access package's `state`), as written.
    pub status: String,
}

impl EntraApproval {
    /// The id people and scripts use: `role:<id>`, `group:<id>`, `package:<id>`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.source.short(), self.id)
    }

    /// When approvers' time runs out (24 hours after the request), if Graph said when it was
    /// made.
    pub fn decide_by(&self) -> Option<DateTime<Utc>> {
        self.created_at
            .map(|c| c + Duration::hours(APPROVAL_WINDOW_HOURS))
    }

    /// Whether `me` (an object id) asked for this, or it is for `me`.
    pub fn is_own(&self, me: &str) -> bool {
        self.requester.id.eq_ignore_ascii_case(me)
            || self
                .created_by
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(me))
    }
}

/// Approvers cannot approve their own requests (Entra's rule too): refused here, before Graph
/// is asked.
pub fn may_approve(approval: &EntraApproval, me: &str) -> Result<(), Refusal> {
    if approval.is_own(me) {
        return Err(Refusal::forbidden(
            "own_request",
            format!(
                "{} is your own request; someone else must approve it",
                super::text::sanitize_preview(&approval.key())
            ),
        ));
    }
    Ok(())
}

/// A row key (`role:<id>`) split into its source and id; a bare id has no source.
pub fn parse_key(key: &str) -> (Option<EntraSource>, &str) {
    match key.split_once(':') {
        Some((source, id)) => match EntraSource::parse(source) {
            Some(source) => (Some(source), id),
            None => (None, key),
        },
        None => (None, key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(requester: &str, created_by: Option<&str>) -> EntraApproval {
        EntraApproval {
            source: EntraSource::DirectoryRole,
            id: "r1".into(),
            approval_id: "r1".into(),
            requester: Principal::new(requester),
            created_by: created_by.map(str::to_owned),
            target: Target::default(),
            scope: Some("/".into()),
            action: Some("selfActivate".into()),
            window: RequestedWindow {
                start: None,
                expiration: Expiration::NoExpiration,
            },
            justification: None,
            ticket: None,
            created_at: None,
            status: "PendingApproval".into(),
        }
    }

    #[test]
    fn nobody_approves_their_own_request() {
        assert!(may_approve(&row("megan", None), "adele").is_ok());
        let own = may_approve(&row("ADELE", None), "adele").unwrap_err();
        assert_eq!(own.code(), "own_request");
        assert!(own.to_string().contains("role:r1"), "{own}");
        assert!(may_approve(&row("agent-7", Some("adele")), "adele").is_err());
    }

    #[test]
    fn keys_name_their_source() {
        let r = row("megan", None);
        assert_eq!(r.key(), "role:r1");
        assert_eq!(
            parse_key("role:r1"),
            (Some(EntraSource::DirectoryRole), "r1")
        );
        assert_eq!(
            parse_key("access_package:p"),
            (Some(EntraSource::AccessPackage), "p")
        );
        assert_eq!(parse_key("9f2b"), (None, "9f2b"));
        assert_eq!(parse_key("odd:9f2b"), (None, "odd:9f2b"));
        for s in EntraSource::ALL {
            assert_eq!(EntraSource::parse(s.short()), Some(s));
            assert_eq!(EntraSource::parse(s.as_str()), Some(s));
        }
    }
}
