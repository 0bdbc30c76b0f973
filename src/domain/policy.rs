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
    /// Whether an agent may hold it standing, from registration, rather than only through a
    /// just-in-time request. Unset: only low-sensitivity capabilities one approver could grant.
    #[serde(default)]
    pub standing: Option<bool>,
    /// Whether a token carrying it must be DPoP-bound (RFC 9449) to the agent's key.
    #[serde(default)]
    pub dpop: bool,
}

impl CapabilityRule {
    /// See [`CapabilityRule::standing`].
    pub fn may_stand(&self) -> bool {
        self.standing
            .unwrap_or(self.sensitivity == Sensitivity::Low && self.approvals_required <= 1)
    }
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
    pub actions: ActionRules,
    pub dpop: DpopRules,
    pub capabilities: Vec<CapabilityRule>,
}

/// Sender-constrained agent tokens (RFC 9449): whether every agent token must be DPoP-bound.
/// A capability's own `dpop = true` requires it for tokens carrying that capability.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpopRules {
    pub required: bool,
}

/// Action requests (AGT approvals through the webhook): who decides besides the agent's
/// sponsors and the integration's sponsor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRules {
    pub approver_roles: Vec<Role>,
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

/// The policy's TOML: the shipped defaults with `overlay` (a user's policy file) layered over
/// them key by key. Tables merge recursively; any other value, arrays included, replaces the
/// shipped one, so a file that lists `[[capabilities]]` replaces that list as a whole (merging
/// rules by position would be surprising).
pub fn layered_over_shipped(overlay: &str) -> Result<toml::Table, Invalid> {
    let parse = |text: &str| {
        toml::from_str::<toml::Table>(text)
            .map_err(|e| Invalid::new("invalid_policy", e.message().to_owned()))
    };
    let mut merged = parse(SHIPPED)?;
    layer(&mut merged, parse(overlay)?);
    Ok(merged)
}

fn layer(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => layer(below, above),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A merged policy table as TOML text, its tables in the order of the shipped file.
pub fn to_toml_text(table: &toml::Table) -> Result<String, toml::ser::Error> {
    const ORDER: [&str; 3] = ["requests", "trust", "capabilities"];
    let mut entries: Vec<(&String, &toml::Value)> = table.iter().collect();
    entries.sort_by_key(|(k, _)| ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()));
    let mut text = String::new();
    for (key, value) in entries {
        let mut one = toml::Table::new();
        one.insert(key.clone(), value.clone());
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&toml::to_string(&one)?);
    }
    Ok(text)
}

impl Policy {
    /// A policy file layered over the shipped defaults (see [`layered_over_shipped`]).
    pub fn from_toml(text: &str) -> Result<Self, Invalid> {
        Self::from_table(layered_over_shipped(text)?)
    }

    /// A complete policy table; errors name the key (`requests.fatigue_limt: unknown field …`).
    pub fn from_table(table: toml::Table) -> Result<Self, Invalid> {
        let policy: Policy =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let at = e.path().to_string();
                let message = e.into_inner().message().to_owned();
                let message = if at == "." {
                    message
                } else {
                    format!("{at}: {message}")
                };
                Invalid::new("invalid_policy", message)
            })?;
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

    /// Why an agent token carrying `caps` must be DPoP-bound: every agent token must be, or a
    /// rule a capability reaches (as for standing) says `dpop = true`. `None`: a plain bearer
    /// token will do.
    pub fn dpop_required(&self, caps: &[Capability]) -> Option<String> {
        if self.dpop.required {
            return Some(
                "policy requires DPoP-bound tokens for every agent ([dpop] required)".into(),
            );
        }
        caps.iter().find_map(|cap| {
            let rules = self.rules_reached_by(cap)?;
            let rule = rules.iter().find(|r| r.dpop)?;
            Some(format!(
                "policy requires a DPoP-bound token for {cap} (capability rule {})",
                rule.pattern
            ))
        })
    }

    /// Every rule that governs part of what `cap` reaches: the most specific rule covering it,
    /// and, for a pattern, every rule inside it (`read:*` reaches what `read:pii:*` governs).
    /// `None` when no rule covers `cap` itself.
    pub fn rules_reached_by(&self, cap: &Capability) -> Option<Vec<&CapabilityRule>> {
        let own = self.rule_for(cap)?;
        let mut rules = vec![own];
        rules.extend(
            self.capabilities
                .iter()
                .filter(|r| &r.pattern != cap && cap.covers(&r.pattern)),
        );
        Some(rules)
    }

    /// Whether `caps` may be held standing (at registration): each is covered by policy and
    /// every rule it reaches allows standing; the rest come only through just-in-time requests.
    pub fn standing(&self, caps: &[Capability]) -> Result<(), Invalid> {
        for cap in caps {
            let rules = self.rules_reached_by(cap).ok_or_else(|| {
                Invalid::new(
                    "capability_not_in_policy",
                    format!("no policy entry covers {cap}; it cannot be held"),
                )
            })?;
            if let Some(rule) = rules.iter().find(|r| !r.may_stand()) {
                return Err(Invalid::new(
                    "capability_not_standing",
                    format!(
                        "{cap} reaches {} ({}, {} approval(s)): it is granted only just in time, \
                         through a request, never held standing",
                        rule.pattern,
                        rule.sensitivity.as_str(),
                        rule.approvals_required
                    ),
                ));
            }
        }
        Ok(())
    }

    /// What a request for `caps` needs. Every capability must match a rule; a pattern also
    /// answers to every rule inside it.
    pub fn requirement(&self, caps: &[Capability]) -> Result<Requirement, Invalid> {
        if caps.is_empty() {
            return Err(Invalid::new(
                "invalid_capability",
                "name at least one capability",
            ));
        }
        let mut req: Option<Requirement> = None;
        let mut rules = Vec::new();
        for cap in caps {
            rules.extend(self.rules_reached_by(cap).ok_or_else(|| {
                Invalid::new(
                    "capability_not_in_policy",
                    format!("no policy entry covers {cap}; it cannot be requested"),
                )
            })?);
        }
        for rule in rules {
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
    fn a_partial_file_layers_over_the_shipped_policy() {
        let shipped = Policy::shipped().expect("shipped policy parses");
        let p = Policy::from_toml("[requests]\nfatigue_limit = 10\n").expect("a partial file");
        assert_eq!(p.requests.fatigue_limit, 10);
        assert_eq!(
            p.requests.pending_ttl_seconds,
            shipped.requests.pending_ttl_seconds
        );
        assert_eq!(p.trust, shipped.trust);
        assert_eq!(p.capabilities, shipped.capabilities);
        // A file that lists capabilities replaces the list as a whole.
        let only = "[[capabilities]]\npattern = \"read:*\"\nsensitivity = \"low\"\n\
                    max_duration = \"1h\"\napprovals_required = 1\n";
        let p = Policy::from_toml(only).expect("a file with its own capabilities");
        assert_eq!(p.capabilities.len(), 1);
        assert_eq!(p.requests, shipped.requests);
    }

    #[test]
    fn errors_in_a_partial_file_name_the_key() {
        for (text, named) in [
            (
                "[requests]\nfatigue_limt = 10\n",
                "requests.fatigue_limt: unknown field `fatigue_limt`",
            ),
            (
                "[trust]\napproved = \"ten\"\n",
                "trust.approved: invalid type",
            ),
            (
                "[requests]\npending_ttl = \"soon\"\n",
                "requests.pending_ttl: \"soon\"",
            ),
            (
                "[request]\nfatigue_limit = 10\n",
                "request: unknown field `request`",
            ),
        ] {
            let err = Policy::from_toml(text).expect_err("refused");
            assert!(err.message.starts_with(named), "{text}: {}", err.message);
        }
    }

    #[test]
    fn the_merged_table_prints_as_a_policy_file() {
        let table = layered_over_shipped("[trust]\ndenied = -30\n").expect("merges");
        let text = to_toml_text(&table).expect("prints");
        assert!(text.starts_with("[requests]\n"), "{text}");
        assert!(text.contains("denied = -30"), "{text}");
        let again = Policy::from_toml(&text).expect("its output parses");
        assert_eq!(again, Policy::from_table(table).expect("valid"));
    }

    #[test]
    fn dpop_is_required_for_every_agent_or_by_what_a_token_reaches() {
        let p = Policy::shipped().expect("shipped policy parses");
        assert_eq!(p.dpop_required(&caps(&["read:crm:x", "write:crm"])), None);
        let p = Policy::from_toml(
            "[[capabilities]]\npattern = \"read:*\"\nsensitivity = \"low\"\n\
             max_duration = \"1h\"\napprovals_required = 1\n\
             [[capabilities]]\npattern = \"read:pii:*\"\nsensitivity = \"high\"\n\
             max_duration = \"1h\"\napprovals_required = 1\ndpop = true\n",
        )
        .expect("a policy with a DPoP rule");
        assert_eq!(p.dpop_required(&caps(&["read:crm:x"])), None);
        let why = p.dpop_required(&caps(&["read:crm:x", "read:pii:ssn"]));
        assert!(why.is_some_and(|w| w.contains("read:pii:*")));
        // A pattern reaching the rule needs it too.
        assert!(p.dpop_required(&caps(&["read:*"])).is_some());
        let all = Policy::from_toml("[dpop]\nrequired = true\n").expect("a partial file");
        assert!(all.dpop_required(&caps(&["read:crm:x"])).is_some());
        assert!(all.dpop_required(&[]).is_some());
        assert!(Policy::from_toml("[dpop]\nrequird = true\n").is_err());
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

    #[test]
    fn standing_is_for_low_capabilities_and_patterns_answer_to_what_they_reach() {
        let p = Policy::shipped().expect("shipped policy parses");
        assert!(p.standing(&caps(&["read:crm:*", "list:tickets"])).is_ok());
        for refused in [&["write:crm"][..], &["admin:*"], &["read:*"], &["delete:x"]] {
            let err = p.standing(&caps(refused)).expect_err("refused");
            assert_eq!(err.code, "capability_not_standing", "{refused:?}");
        }
        let err = p.standing(&caps(&["fly:kites"])).expect_err("refused");
        assert_eq!(err.code, "capability_not_in_policy");
        // `read:*` reaches `read:pii:*`: the request is as strict as that rule.
        let r = p.requirement(&caps(&["read:*"])).expect("covered");
        assert_eq!(r.sensitivity, Sensitivity::High);
        assert_eq!(r.max_seconds, 2 * 3600);
        // An explicit `standing = true` lets a rule stand whatever its sensitivity.
        let mut open = p.clone();
        for rule in &mut open.capabilities {
            if rule.pattern.as_str() == "write:*" {
                rule.standing = Some(true);
            }
        }
        assert!(open.standing(&caps(&["write:crm"])).is_ok());
    }
}
