//! Policy: which capabilities may be requested, how sensitive each is, for how long it may be
//! granted, how many humans must approve and which roles may approve besides the agent's own
//! sponsors; plus the request rules (pending TTL, approval fatigue, minimum trust, delegation
//! depth) and how events move trust. Shipped in `config/policy.default.toml`.

use serde::{Deserialize, Deserializer, Serialize};

use super::Invalid;
use super::capability::Capability;
use super::role::Role;
use super::trust::Tier;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Low,
    High,
    Critical,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::Low => "low",
            Sensitivity::High => "high",
            Sensitivity::Critical => "critical",
        }
    }
}

/// Durations in policy files are written as `15m`, `1h`, `4h 30m`.
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = String::deserialize(d)?;
    let parsed = humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration: {e}")))?;
    i64::try_from(parsed.as_secs()).map_err(serde::de::Error::custom)
}

/// One `[[capabilities]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityRule {
    pub pattern: Capability,
    pub sensitivity: Sensitivity,
    #[serde(deserialize_with = "seconds", rename = "max_duration")]
    pub max_seconds: i64,
    pub approvals_required: u8,
    /// Roles that may decide for any agent, besides the agent's own sponsors.
    #[serde(default)]
    pub approver_roles: Vec<Role>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestRules {
    #[serde(deserialize_with = "seconds", rename = "pending_ttl")]
    pub pending_ttl_seconds: i64,
    /// More than this many requests from one agent within the window are auto-denied.
    pub fatigue_limit: u32,
    #[serde(deserialize_with = "seconds", rename = "fatigue_window")]
    pub fatigue_window_seconds: i64,
    /// Agents below this trust score may not request at all.
    pub min_trust: i64,
    pub max_delegation_depth: i64,
    /// The longest duration any request may ask for, whatever the capability.
    #[serde(deserialize_with = "seconds", rename = "max_requested_duration")]
    pub max_requested_seconds: i64,
}

/// How events move trust.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRules {
    pub approved: i64,
    pub denied: i64,
    pub expired: i64,
    pub approval_fatigue: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub requests: RequestRules,
    pub trust: TrustRules,
    pub capabilities: Vec<CapabilityRule>,
}

/// What policy demands of one request (all its capabilities together: the strictest rule of
/// each kind wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Requirement {
    pub sensitivity: Sensitivity,
    pub max_seconds: i64,
    pub approvals_required: u8,
    /// Roles allowed by every matching rule (the agent's sponsors may always decide).
    pub approver_roles: Vec<Role>,
}

impl Requirement {
    /// The longest grant an approver may give: what was asked, capped by policy.
    pub fn grantable_seconds(&self, requested_seconds: i64) -> i64 {
        requested_seconds.min(self.max_seconds)
    }

    /// Whether a request may be approved together with others, without its own dialog: only
    /// when it is low-sensitivity, needs one approver, and its agent is at standard trust or
    /// above.
    pub fn allows_bulk_approval(&self, trust: Tier) -> bool {
        self.sensitivity == Sensitivity::Low
            && self.approvals_required <= 1
            && trust >= Tier::Standard
    }
}

pub const SHIPPED: &str = include_str!("../../config/policy.default.toml");

impl Policy {
    pub fn from_toml(text: &str) -> Result<Self, Invalid> {
        let policy: Policy = toml::from_str(text)
            .map_err(|e| Invalid::new("invalid_policy", e.message().to_owned()))?;
        policy.validate()?;
        Ok(policy)
    }

    pub fn shipped() -> Result<Self, Invalid> {
        Self::from_toml(SHIPPED)
    }

    fn validate(&self) -> Result<(), Invalid> {
        let bad = |m: String| Err(Invalid::new("invalid_policy", m));
        let r = &self.requests;
        if r.pending_ttl_seconds < 60 {
            return bad("requests.pending_ttl must be at least 1 minute".into());
        }
        if r.fatigue_window_seconds < 1 {
            return bad("requests.fatigue_window must be positive".into());
        }
        if !(1..=10).contains(&r.max_delegation_depth) {
            return bad("requests.max_delegation_depth must be between 1 and 10".into());
        }
        if !(0..=1000).contains(&r.min_trust) {
            return bad("requests.min_trust must be between 0 and 1000".into());
        }
        if r.max_requested_seconds < 60 {
            return bad("requests.max_requested_duration must be at least 1 minute".into());
        }
        for rule in &self.capabilities {
            if !(1..=2).contains(&rule.approvals_required) {
                return bad(format!(
                    "{}: approvals_required must be 1 or 2",
                    rule.pattern
                ));
            }
            if rule.max_seconds < 60 {
                return bad(format!(
                    "{}: max_duration must be at least 1 minute",
                    rule.pattern
                ));
            }
        }
        Ok(())
    }

    /// The most specific rule covering `cap` (the longest pattern), if any.
    pub fn rule_for(&self, cap: &Capability) -> Option<&CapabilityRule> {
        self.capabilities
            .iter()
            .filter(|r| r.pattern.covers(cap))
            .max_by_key(|r| r.pattern.as_str().len())
    }

    /// What a request for `caps` needs. Every capability must match a rule.
    pub fn requirement(&self, caps: &[Capability]) -> Result<Requirement, Invalid> {
        if caps.is_empty() {
            return Err(Invalid::new(
                "invalid_capability",
                "name at least one capability",
            ));
        }
        let mut req: Option<Requirement> = None;
        for cap in caps {
            let rule = self.rule_for(cap).ok_or_else(|| {
                Invalid::new(
                    "capability_not_in_policy",
                    format!("no policy entry covers {cap}; it cannot be requested"),
                )
            })?;
            req = Some(match req {
                None => Requirement {
                    sensitivity: rule.sensitivity,
                    max_seconds: rule.max_seconds,
                    approvals_required: rule.approvals_required,
                    approver_roles: rule.approver_roles.clone(),
                },
                Some(r) => Requirement {
                    sensitivity: r.sensitivity.max(rule.sensitivity),
                    max_seconds: r.max_seconds.min(rule.max_seconds),
                    approvals_required: r.approvals_required.max(rule.approvals_required),
                    approver_roles: r
                        .approver_roles
                        .into_iter()
                        .filter(|role| rule.approver_roles.contains(role))
                        .collect(),
                },
            });
        }
        req.ok_or_else(|| Invalid::new("invalid_capability", "name at least one capability"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(items: &[&str]) -> Vec<Capability> {
        items
            .iter()
            .map(|s| Capability::parse(s).expect("a valid capability"))
            .collect()
    }

    #[test]
    fn the_shipped_policy_parses() {
        let p = Policy::shipped().expect("the shipped policy parses");
        assert_eq!(p.requests.pending_ttl_seconds, 3600);
        assert_eq!(p.requests.max_delegation_depth, 3);
        assert!(!p.capabilities.is_empty());
    }

    #[test]
    fn the_strictest_rule_wins_and_unknown_capabilities_are_refused() {
        let p = Policy::shipped().expect("the shipped policy parses");
        let low = p
            .requirement(&caps(&["read:crm:accounts"]))
            .expect("a known capability has a requirement");
        assert_eq!(low.sensitivity, Sensitivity::Low);
        let mixed = p
            .requirement(&caps(&["read:crm:accounts", "delete:crm:accounts"]))
            .expect("known capabilities have a requirement");
        assert_eq!(mixed.sensitivity, Sensitivity::Critical);
        assert_eq!(mixed.approvals_required, 2);
        assert!(mixed.max_seconds <= low.max_seconds);
        let unknown = p.requirement(&caps(&["launch:rockets"]));
        assert_eq!(unknown.map_err(|e| e.code), Err("capability_not_in_policy"));
    }

    #[test]
    fn bad_policies_are_refused() {
        let broken = SHIPPED.replace("approvals_required = 2", "approvals_required = 3");
        assert!(Policy::from_toml(&broken).is_err());
        assert!(Policy::from_toml("[requests]\nunknown = 1").is_err());
    }

    #[test]
    fn what_an_approver_may_grant() {
        let req = |sensitivity, approvals_required| Requirement {
            sensitivity,
            max_seconds: 4 * 3600,
            approvals_required,
            approver_roles: vec![],
        };
        let low = req(Sensitivity::Low, 1);
        assert_eq!(low.grantable_seconds(7200), 7200);
        assert_eq!(low.grantable_seconds(8 * 3600), 4 * 3600);
        assert!(low.allows_bulk_approval(Tier::Standard));
        assert!(low.allows_bulk_approval(Tier::VerifiedPartner));
        assert!(!low.allows_bulk_approval(Tier::Probationary));
        assert!(!req(Sensitivity::Low, 2).allows_bulk_approval(Tier::Trusted));
        assert!(!req(Sensitivity::High, 1).allows_bulk_approval(Tier::Trusted));
        assert!(!req(Sensitivity::Critical, 1).allows_bulk_approval(Tier::Trusted));
    }
}
