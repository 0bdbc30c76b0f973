//! What a sign-in mints: Entra v2 access tokens (RS256, `kid` in the JWKS) for the one
//! resource the `scope` names (Graph, or an API app by `api://<app-id>/<scope>`), an id token,
//! and a refresh token that mints for either resource later.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::EmulatorError;
use crate::directory::{ApiApp, Directory, GRAPH_APP_ID, GRAPH_RESOURCE, User};
use crate::state::{RefreshGrant, World};

const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The resource a token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Graph,
    Api(ApiApp),
}

/// A parsed `scope` parameter: one resource, its scope names, and the OIDC scopes asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub resource: Resource,
    pub scopes: Vec<String>,
    pub oidc: Vec<String>,
}

/// Why a `scope` cannot be granted, as the token endpoint says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeError {
    pub error: &'static str,
    pub text: String,
}

fn scope_error(error: &'static str, text: String) -> ScopeError {
    ScopeError { error, text }
}

/// Parses `scope`: Graph scopes (`https://graph.microsoft.com/X`, or bare `X`), an API app's
/// (`api://<app-id>/X` or `<app-id>/X`), `.default` for everything consented, and the OIDC
/// scopes. All resource scopes must name one resource.
pub fn parse_scope(directory: &Directory, scope: &str) -> Result<Grant, ScopeError> {
    let mut resource: Option<Resource> = None;
    let mut scopes = Vec::new();
    let mut oidc = Vec::new();
    for item in scope.split_whitespace() {
        if let Some(o) = OIDC_SCOPES.iter().find(|o| o.eq_ignore_ascii_case(item)) {
            oidc.push((*o).to_owned());
            continue;
        }
        let (this, name) = resource_of(directory, item)?;
        match &resource {
            Some(r) if *r != this => {
                return Err(scope_error(
                    "invalid_scope",
                    format!(
                        "The provided value for the input parameter 'scope' is not valid. Scopes for more than one resource were requested ({item})."
                    ),
                ));
            }
            _ => resource = Some(this.clone()),
        }
        if name == ".default" {
            let all = match &this {
                Resource::Graph => directory.graph_scopes.clone(),
                Resource::Api(app) => app.scopes.clone(),
            };
            scopes.extend(all);
        } else {
            if let Resource::Api(app) = &this
                && !app.scopes.iter().any(|s| s.eq_ignore_ascii_case(&name))
            {
                return Err(scope_error(
                    "invalid_scope",
                    format!(
                        "The application '{}' does not expose the scope '{name}'.",
                        app.app_id
                    ),
                ));
            }
            scopes.push(name);
        }
    }
    scopes.dedup();
    let resource = resource.unwrap_or(Resource::Graph);
    if resource == Resource::Graph && scopes.is_empty() {
        scopes.push("User.Read".into());
    }
    Ok(Grant {
        resource,
        scopes,
        oidc,
    })
}

fn resource_of(directory: &Directory, item: &str) -> Result<(Resource, String), ScopeError> {
    let lower = item.to_ascii_lowercase();
    for prefix in [GRAPH_RESOURCE, GRAPH_APP_ID] {
        if lower.starts_with(&format!("{prefix}/")) {
            return Ok((Resource::Graph, item[prefix.len() + 1..].to_owned()));
        }
    }
    let rest = item.strip_prefix("api://").unwrap_or(item);
    if let Some((app_id, name)) = rest.rsplit_once('/') {
        return match directory.api_app(app_id) {
            Some(app) => Ok((Resource::Api(app.clone()), name.to_owned())),
            None => Err(scope_error(
                "invalid_resource",
                format!("The resource principal named {app_id} was not found in the tenant."),
            )),
        };
    }
    Ok((Resource::Graph, item.to_owned()))
}

impl Grant {
    /// The `aud` of tokens for this grant.
    pub fn audience(&self) -> String {
        match &self.resource {
            Resource::Graph => GRAPH_RESOURCE.to_owned(),
            Resource::Api(app) => app.app_id.clone(),
        }
    }

    /// The `scope` of the token response: Graph names short, API scopes in full.
    pub fn response_scope(&self) -> String {
        let names = self.scopes.iter().map(|s| match &self.resource {
            Resource::Graph => s.clone(),
            Resource::Api(app) => format!("{}/{s}", app.id_uri()),
        });
        names
            .chain(self.oidc.iter().filter(|o| *o != "offline_access").cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn random_id(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

/// Entra's `sub` is pairwise: one value per person per application.
fn pairwise_sub(oid: &str, audience: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(format!("{oid}|{audience}"))[..24])
}

/// The claims of an access token for `user` under `grant`.
pub fn access_claims(
    issuer: &str,
    tenant_id: &str,
    user: &User,
    client_id: &str,
    grant: &Grant,
    now: DateTime<Utc>,
    lifetime_seconds: i64,
) -> Value {
    let aud = grant.audience();
    let mut claims = json!({
        "aud": aud,
        "iss": issuer,
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": now.timestamp() + lifetime_seconds,
        "aio": random_id(24),
        "azp": client_id,
        "azpacr": "0",
        "name": user.display_name,
        "oid": user.id,
        "preferred_username": user.user_principal_name,
        "upn": user.user_principal_name,
        "rh": random_id(16),
        "scp": grant.scopes.join(" "),
        "sub": pairwise_sub(&user.id, &aud),
        "tid": tenant_id,
        "uti": random_id(16),
        "ver": "2.0",
    });
    if let Resource::Api(app) = &grant.resource {
        let roles: Vec<&String> = user
            .app_roles
            .iter()
            .filter(|r| app.app_roles.contains(r))
            .collect();
        if !roles.is_empty() {
            claims["roles"] = json!(roles);
        }
        if app.group_claims && !user.groups.is_empty() {
            claims["groups"] = json!(user.groups);
        }
    }
    claims
}

/// When and by whom tokens are minted.
#[derive(Debug, Clone, Copy)]
pub struct Minting<'a> {
    pub issuer: &'a str,
    pub now: DateTime<Utc>,
    pub lifetime_seconds: i64,
}

/// Mints the token response for `user` (and records its refresh token when one is due).
pub fn mint(
    world: &mut World,
    at: Minting<'_>,
    user_id: &str,
    client_id: &str,
    grant: &Grant,
    refresh: bool,
) -> Result<Value, EmulatorError> {
    let Minting {
        issuer,
        now,
        lifetime_seconds,
    } = at;
    let tenant_id = world.directory.tenant_id.clone();
    let user = world
        .directory
        .user(user_id)
        .cloned()
        .ok_or_else(|| EmulatorError::Control(format!("no user {user_id}")))?;
    let key = world
        .keys
        .current()
        .ok_or_else(|| EmulatorError::Key("no signing key".into()))?;
    let claims = access_claims(
        issuer,
        &tenant_id,
        &user,
        client_id,
        grant,
        now,
        lifetime_seconds,
    );
    let access_token = key.sign(&claims)?;
    let mut body = json!({
        "token_type": "Bearer",
        "scope": grant.response_scope(),
        "expires_in": lifetime_seconds,
        "ext_expires_in": lifetime_seconds,
        "access_token": access_token,
    });
    if grant.oidc.iter().any(|o| o == "openid") {
        let id_claims = json!({
            "aud": client_id,
            "iss": issuer,
            "iat": now.timestamp(),
            "nbf": now.timestamp(),
            "exp": now.timestamp() + lifetime_seconds,
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.user_principal_name,
            "sub": pairwise_sub(&user.id, client_id),
            "tid": tenant_id,
            "ver": "2.0",
        });
        body["id_token"] = Value::String(key.sign(&id_claims)?);
    }
    if refresh {
        let token = format!("1.A{}", random_id(96));
        world.refresh_tokens.insert(
            token.clone(),
            RefreshGrant {
                user_id: user.id.clone(),
                client_id: client_id.to_owned(),
                scope: grant_scope_string(grant),
                revoked: false,
            },
        );
        body["refresh_token"] = Value::String(token);
    }
    Ok(body)
}

/// A scope string that parses back to `grant` (what a refresh without `scope` reuses).
fn grant_scope_string(grant: &Grant) -> String {
    let names = grant.scopes.iter().map(|s| match &grant.resource {
        Resource::Graph => format!("{GRAPH_RESOURCE}/{s}"),
        Resource::Api(app) => format!("{}/{s}", app.id_uri()),
    });
    names
        .chain(grant.oidc.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Who called Graph, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub oid: String,
    pub scopes: Vec<String>,
}

impl Caller {
    /// Whether the token holds one of `any` (case-insensitively).
    pub fn has_any(&self, any: &[&str]) -> bool {
        self.scopes
            .iter()
            .any(|s| any.iter().any(|a| a.eq_ignore_ascii_case(s)))
    }
}

/// Checks a Graph bearer token: our signature (RS256, a published `kid`), our issuer, Graph's
/// audience, `nbf` ≤ now < `exp`, and a person the directory knows.
pub fn verify_graph(
    world: &World,
    issuer: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Option<Caller> {
    let claims = world
        .keys
        .verify(token, issuer, &[GRAPH_RESOURCE, GRAPH_APP_ID])?;
    let at = now.timestamp();
    let exp = claims.get("exp")?.as_i64()?;
    let nbf = claims
        .get("nbf")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MIN);
    if exp <= at || nbf > at {
        return None;
    }
    if claims.get("tid")?.as_str()? != world.directory.tenant_id {
        return None;
    }
    let oid = claims.get("oid")?.as_str()?.to_owned();
    world.directory.user(&oid)?;
    let scopes = claims
        .get("scp")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some(Caller { oid, scopes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::demo;

    #[test]
    fn one_resource_per_request_and_defaults_expand() {
        let d = Directory::demo();
        let g = parse_scope(
            &d,
            "https://graph.microsoft.com/RoleAssignmentSchedule.ReadWrite.Directory offline_access openid",
        )
        .unwrap();
        assert_eq!(g.resource, Resource::Graph);
        assert_eq!(g.scopes, vec!["RoleAssignmentSchedule.ReadWrite.Directory"]);
        assert_eq!(g.audience(), GRAPH_RESOURCE);
        let api = parse_scope(
            &d,
            &format!(
                "api://{}/governance offline_access",
                demo::GOVERNANCE_APP_ID
            ),
        )
        .unwrap();
        assert_eq!(api.audience(), demo::GOVERNANCE_APP_ID);
        assert_eq!(api.scopes, vec!["governance"]);
        let all = parse_scope(&d, "https://graph.microsoft.com/.default").unwrap();
        assert_eq!(all.scopes, d.graph_scopes);
        let both = parse_scope(
            &d,
            &format!("User.Read api://{}/governance", demo::GOVERNANCE_APP_ID),
        );
        assert_eq!(both.unwrap_err().error, "invalid_scope");
        assert_eq!(
            parse_scope(&d, "api://nobody/x").unwrap_err().error,
            "invalid_resource"
        );
        assert_eq!(
            parse_scope(&d, &format!("api://{}/admin", demo::GOVERNANCE_APP_ID))
                .unwrap_err()
                .error,
            "invalid_scope"
        );
    }

    #[test]
    fn api_tokens_carry_only_that_apps_roles_and_the_groups() {
        let d = Directory::demo();
        let grant =
            parse_scope(&d, &format!("api://{}/governance", demo::GOVERNANCE_APP_ID)).unwrap();
        let mut lee = d.user(demo::LEE).unwrap().clone();
        lee.app_roles.push("SomeOtherApp.Role".into());
        let now = Utc::now();
        let c = access_claims(
            "https://e/t/v2.0",
            demo::TENANT_ID,
            &lee,
            "client",
            &grant,
            now,
            60,
        );
        assert!(c.get("roles").is_none());
        assert_eq!(c["groups"], json!([demo::ON_CALL_GROUP]));
        assert_eq!(c["scp"], "governance");
        assert_eq!(c["tid"], demo::TENANT_ID);
        assert_eq!(c["ver"], "2.0");
        let graph = parse_scope(&d, "User.Read").unwrap();
        let g = access_claims(
            "https://e/t/v2.0",
            demo::TENANT_ID,
            &lee,
            "client",
            &graph,
            now,
            60,
        );
        assert!(g.get("groups").is_none());
        assert_ne!(g["sub"], c["sub"], "sub is pairwise");
    }
}
