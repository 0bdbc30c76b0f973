//! Human roles in the local tenant.

use serde::{Deserialize, Serialize};

use super::Invalid;

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
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Owns agents and decides their requests.
    Sponsor,
    /// Reads everything and runs access reviews.
    SecurityLead,
    /// May suspend any agent.
    OnCall,
    /// Administers the tenant.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Sponsor, Role::SecurityLead, Role::OnCall, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sponsor => "sponsor",
            Role::SecurityLead => "security-lead",
            Role::OnCall => "on-call",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Invalid::new(
                    "invalid_role",
                    format!(
                        "unknown role {s:?}; expected sponsor, security-lead, on-call or admin"
                    ),
                )
            })
    }

    /// Whether this role reads every agent and audit event, not only its own.
    pub fn reads_all(self) -> bool {
        matches!(self, Role::SecurityLead | Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a comma- or space-separated role list, refusing unknown names and empty lists.
pub fn parse_list(s: &str) -> Result<Vec<Role>, Invalid> {
    let mut roles = Vec::new();
    for part in s.split([',', ' ']).filter(|p| !p.is_empty()) {
        let role = Role::parse(part)?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    if roles.is_empty() {
        return Err(Invalid::new(
            "invalid_role",
            "at least one role is required",
        ));
    }
    roles.sort();
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(
            parse_list("sponsor,on-call sponsor").ok(),
            Some(vec![Role::Sponsor, Role::OnCall])
        );
        assert!(parse_list("root").is_err());
        assert!(parse_list("").is_err());
    }
}
