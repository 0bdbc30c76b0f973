//! Sponsors vouched for by a trusted external issuer (Microsoft Entra): which tokens count,
//! who a token names, which of our roles it gives, and when the stored sponsor must follow.
//! Pure: the server checks the signature (RS256 against the issuer's JWKS) and calls these.
//!
//! A person is identified by the tenant and their object id (`oid`), never by a name they can
//! change: their sponsor id is `entra:<tid>:<oid>`, a form local usernames may not take.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Invalid;
use super::role::Role;
use super::text;
use crate::protocol::entra::EntraAccessClaims;

/// What every external sponsor's id (and username) starts with.
pub const ENTRA_PREFIX: &str = "entra:";

/// The sponsor id of person `oid` of tenant `tenant_id`.
pub fn sponsor_id(tenant_id: &str, oid: &str) -> String {
    format!(
        "{ENTRA_PREFIX}{}:{}",
        tenant_id.to_ascii_lowercase(),
        oid.to_ascii_lowercase()
    )
}

/// Whether a local username would take the external sponsors' form (refused, so a local
/// account can never be mistaken for, or collide with, a person of a tenant).
pub fn is_reserved_username(username: &str) -> bool {
    text::canonical_identity(username).starts_with(ENTRA_PREFIX)
}

/// Which of our roles an issuer's app roles and groups give. `admin` is never given from
/// outside: administering the server stays with its local accounts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleMapping {
    app_roles: Vec<(String, Role)>,
    group_roles: Vec<(String, Role)>,
}

impl RoleMapping {
    /// From `app role value → role` and `group object id → role` tables.
    pub fn new(
        app_roles: &BTreeMap<String, String>,
        group_roles: &BTreeMap<String, String>,
    ) -> Result<Self, Invalid> {
        let parse = |table: &BTreeMap<String, String>| {
            table
                .iter()
                .map(|(from, to)| {
                    let role = Role::parse(to)?;
                    if role == Role::Admin {
                        return Err(Invalid::new(
                            "invalid_role",
                            format!("{from}: the admin role is not given to external sponsors"),
                        ));
                    }
                    Ok((from.clone(), role))
                })
                .collect::<Result<Vec<_>, Invalid>>()
        };
        let mapping = Self {
            app_roles: parse(app_roles)?,
            group_roles: parse(group_roles)?,
        };
        if mapping.app_roles.is_empty() && mapping.group_roles.is_empty() {
            return Err(Invalid::new(
                "invalid_role",
                "map at least one app role or group to a role, or nobody from this issuer can act",
            ));
        }
        Ok(mapping)
    }

    /// Our roles for a person with these app roles (compared exactly, as Entra's values are)
    /// and groups (object ids, compared case-insensitively); sorted, without repeats.
    pub fn roles(&self, app_roles: &[String], groups: &[String]) -> Vec<Role> {
        let mut roles: Vec<Role> = self
            .app_roles
            .iter()
            .filter(|(value, _)| app_roles.contains(value))
            .chain(
                self.group_roles
                    .iter()
                    .filter(|(id, _)| groups.iter().any(|g| g.eq_ignore_ascii_case(id))),
            )
            .map(|(_, role)| *role)
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }
}

/// One trusted issuer's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRule {
    pub issuer: String,
    pub audience: String,
    /// The only tenant whose tokens count.
    pub tenant_id: String,
    /// The delegated scope (`scp`) that lets a token act on `/v1`.
    pub scope: String,
    pub mapping: RoleMapping,
}

/// Who a good token names, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub sponsor_id: String,
    /// The sign-in name (UPN), else the object id.
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    /// Whether `scp` holds the issuer's scope.
    pub scoped: bool,
    pub issued_at: i64,
    pub not_before: i64,
    pub expires_at: i64,
    /// Entra's token id (`uti`), when present.
    pub token_id: Option<String>,
    pub client_id: String,
}

/// Why a correctly signed token is refused anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("wrong tenant")]
    Tenant,
    #[error("missing or malformed claim {0}")]
    Claim(&'static str),
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("no role on this server")]
    NoRole,
}

/// An object or tenant id: a GUID-like token of letters, digits and dashes.
fn id_like(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A name shown to people: the first candidate that passes the name rules.
fn first_name<'a>(candidates: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    candidates
        .into_iter()
        .flatten()
        .find(|n| text::name("name", n).is_ok())
        .map(str::to_owned)
}

/// Checks a verified token's claims against the issuer's rules at `now`.
pub fn admit(
    rule: &IssuerRule,
    claims: &EntraAccessClaims,
    now: DateTime<Utc>,
) -> Result<ExternalIdentity, Rejected> {
    if claims.iss != rule.issuer {
        return Err(Rejected::Issuer);
    }
    if claims.aud != rule.audience {
        return Err(Rejected::Audience);
    }
    let tid = claims.tid.as_deref().ok_or(Rejected::Claim("tid"))?;
    if !tid.eq_ignore_ascii_case(&rule.tenant_id) {
        return Err(Rejected::Tenant);
    }
    let oid = claims
        .oid
        .as_deref()
        .filter(|o| id_like(o))
        .ok_or(Rejected::Claim("oid"))?;
    let at = now.timestamp();
    if claims.exp <= at {
        return Err(Rejected::Expired);
    }
    let not_before = claims.nbf.unwrap_or(i64::MIN);
    if not_before > at {
        return Err(Rejected::NotYetValid);
    }
    let roles = rule.mapping.roles(&claims.roles, &claims.groups);
    if roles.is_empty() {
        return Err(Rejected::NoRole);
    }
    let login = [claims.preferred_username.as_deref(), claims.upn.as_deref()];
    let username = first_name(login).unwrap_or_else(|| oid.to_owned());
    let display_name =
        first_name([claims.name.as_deref(), login[0], login[1]]).unwrap_or_else(|| oid.to_owned());
    Ok(ExternalIdentity {
        sponsor_id: sponsor_id(tid, oid),
        username,
        display_name,
        roles,
        scoped: claims
            .scp
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .any(|s| s == rule.scope),
        issued_at: claims.iat.unwrap_or(not_before.max(0)),
        not_before: claims.nbf.unwrap_or(claims.iat.unwrap_or(at)),
        expires_at: claims.exp,
        token_id: claims.uti.clone().filter(|u| id_like(&u.replace('_', ""))),
        client_id: claims
            .azp
            .clone()
            .or_else(|| claims.appid.clone())
            .unwrap_or_default(),
    })
}

/// Whether the sponsor's stored roles must follow the token's (first sight included).
pub fn needs_sync(held: Option<&[Role]>, mapped: &[Role]) -> bool {
    match held {
        None => true,
        Some(held) => {
            let mut held = held.to_vec();
            held.sort();
            held.dedup();
            held != mapped
        }
    }
}

#[cfg(test)]
mod tests;
